//! Named starting points of `pretrain --preset`: an app's paper recipe (its
//! `Default`) or its laptop recipe. The config file and the flags apply on
//! top of the preset, key by key.

/// An app config with a laptop recipe beside its `Default` (paper) one.
pub trait LaptopRecipe: Default {
    /// A dataset of a few thousand samples in about 15 minutes on 2 CPU
    /// cores; each app's README says what it reaches on real check sets.
    fn laptop() -> Self;
}

/// The value of `pretrain --preset`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Preset {
    /// The paper's recipe: the app's defaults (`official` is accepted too).
    #[default]
    #[cfg_attr(feature = "cli", value(alias = "official"))]
    Paper,
    /// The app's laptop recipe: a few thousand samples in about 15 minutes on 2 CPU cores.
    Laptop,
}

impl Preset {
    /// The configuration this preset starts from.
    pub fn config<C: LaptopRecipe>(self) -> C {
        match self {
            Preset::Paper => C::default(),
            Preset::Laptop => C::laptop(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq)]
    struct Cfg(u32);

    impl LaptopRecipe for Cfg {
        fn laptop() -> Self {
            Cfg(7)
        }
    }

    #[test]
    fn each_preset_starts_from_its_recipe() {
        assert_eq!(Preset::Paper.config::<Cfg>(), Cfg(0));
        assert_eq!(Preset::Laptop.config::<Cfg>(), Cfg(7));
        assert_eq!(Preset::default(), Preset::Paper);
    }

    #[cfg(feature = "cli")]
    #[test]
    fn official_names_the_paper_recipe() {
        use clap::ValueEnum;
        assert_eq!(Preset::from_str("official", true), Ok(Preset::Paper));
        assert_eq!(Preset::from_str("paper", true), Ok(Preset::Paper));
        assert_eq!(Preset::from_str("laptop", true), Ok(Preset::Laptop));
    }
}
