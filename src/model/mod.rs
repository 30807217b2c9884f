//! The domain model, shared by every layer: `wire` decodes into it, `track` turns it into
//! lifetime events, `store` keeps them and `report` prints them. It depends on none of them.

pub mod compact;
pub mod digest;
pub mod event;
pub mod ifname;
pub mod lifetime;
pub mod record;
pub mod state;

pub use compact::CompactState;
pub use event::*;
pub use ifname::{IfName, IFNAME_CAP};
pub use lifetime::{End, OpenState};
pub use record::Lifetime;
pub use state::*;
