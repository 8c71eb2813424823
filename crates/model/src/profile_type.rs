//! Profile type IDs: `name:sample_type:sample_unit:period_type:period_unit`.

use std::fmt;

use crate::ModelError;

/// A parsed profile type ID.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProfileType {
    /// `__name__` of the series (`process_cpu`, `memory`, ...).
    pub name: String,
    /// The pprof sample type (`cpu`, `alloc_space`, ...).
    pub sample_type: String,
    /// The pprof sample unit (`nanoseconds`, `bytes`, ...).
    pub sample_unit: String,
    /// The pprof period type; may be empty.
    pub period_type: String,
    /// The pprof period unit; may be empty.
    pub period_unit: String,
}

impl ProfileType {
    /// Parses `id`. Exactly five `:`-separated parts are required; a sixth
    /// part is tolerated and ignored, as Pyroscope does.
    pub fn parse(id: &str) -> Result<Self, ModelError> {
        let parts: Vec<&str> = id.split(':').collect();
        if parts.len() != 5 && parts.len() != 6 {
            return Err(ModelError::InvalidProfileType(id.to_owned()));
        }
        if parts[0].is_empty() {
            return Err(ModelError::InvalidProfileType(id.to_owned()));
        }
        Ok(ProfileType {
            name: parts[0].to_owned(),
            sample_type: parts[1].to_owned(),
            sample_unit: parts[2].to_owned(),
            period_type: parts[3].to_owned(),
            period_unit: parts[4].to_owned(),
        })
    }

    /// The canonical ID string.
    pub fn id(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ProfileType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}:{}:{}",
            self.name, self.sample_type, self.sample_unit, self.period_type, self.period_unit
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        let t = ProfileType::parse("process_cpu:cpu:nanoseconds:cpu:nanoseconds").unwrap();
        assert_eq!(t.name, "process_cpu");
        assert_eq!(t.sample_type, "cpu");
        assert_eq!(t.to_string(), "process_cpu:cpu:nanoseconds:cpu:nanoseconds");
        let t = ProfileType::parse("memory:alloc_space:bytes::").unwrap();
        assert_eq!(t.period_type, "");
        assert_eq!(
            ProfileType::parse("a:b:c:d:e:f").unwrap().to_string(),
            "a:b:c:d:e"
        );
        assert!(ProfileType::parse("a:b:c:d").is_err());
        assert!(ProfileType::parse("process_cpu").is_err());
        assert!(ProfileType::parse(":b:c:d:e").is_err());
    }
}
