//! Audio data: wav decoding and resampling, the ESC-50 index, waveform augmentations and
//! the ESC-50 datasets.

pub mod activity;
pub mod augment;
pub mod dataset;
pub mod esc50;
pub mod resample;
pub mod wav;

pub use activity::{ActivityConfig, CropPolicy, EvalView, SILENCE_RMS};
pub use augment::{AudioViewConfig, ShiftMode};
pub use dataset::{
    collate_labelled_waveforms, collate_waveform_pairs, collate_windowed, Esc50Labelled,
    Esc50Pretrain, Esc50Windows,
};
pub use esc50::{train_fold_list, Esc50Clip, Esc50Index, ESC50_FOLDS};
pub use resample::{resample, resampled_len, MAX_RESAMPLED_LEN};
pub use wav::{load_wav, read_wav, wav_seconds, write_wav_mono16, Waveform};
