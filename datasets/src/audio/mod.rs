//! Audio data: wav decoding and resampling, the ESC-50 index, waveform augmentations and
//! the ESC-50 datasets; the evaluation protocols and labelled batches of a set in the
//! ESC-50 layout ([`protocol`], [`eval_input`]) and the audio keys of a config
//! ([`settings`]).

pub mod activity;
pub mod augment;
pub mod crop;
pub mod dataset;
pub mod esc50;
pub mod eval_input;
pub mod protocol;
pub mod resample;
pub mod settings;
pub mod wav;

pub use crate::loader::to_labelled;
pub use activity::{ActivityConfig, CropPolicy, EvalView, SILENCE_RMS};
pub use augment::{AudioViewConfig, ShiftMode};
pub use dataset::{
    collate_labelled_waveforms, collate_waveform_pairs, collate_windowed, Esc50Labelled,
    Esc50Pretrain, Esc50Windows,
};
pub use esc50::{train_fold_list, Esc50Clip, Esc50Index, ESC50_FOLDS};
pub use eval_input::{
    eval_batches, train_loader, EvalBatches, EvalInput, EvalPlan, MAX_EVAL_SECONDS,
};
pub use protocol::{clip_names, fold_plan, open_index, FoldRun, Protocol};
pub use resample::{resample, resampled_len, MAX_RESAMPLED_LEN};
#[cfg(feature = "cli")]
pub use settings::AudioFlags;
pub use settings::AudioSettings;
pub use wav::{load_wav, read_wav, wav_seconds, write_wav_mono16, Waveform};
