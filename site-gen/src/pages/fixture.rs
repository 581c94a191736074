//! The page models' tests run on the small rollups of
//! [`crate::testing`].

pub(crate) use crate::testing::{options, rollups};

use super::Site;
use crate::site::Audience;

/// Run `test` on the site of the fixture for `audience`.
pub(crate) fn with_site<R>(audience: Audience, test: impl FnOnce(&Site<'_>) -> R) -> R {
    let rollups = rollups();
    let opts = options(audience);
    test(&Site::new(&rollups, &opts).expect("a site"))
}
