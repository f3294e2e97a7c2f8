//! Views of the installable app and Web Push: the devices list on the settings page (page and
//! live fragment alike) and the offline page the service worker keeps.

use askama::Template;

use super::{Layout, Stamp, dom};
use crate::events::PushDevice;

/// One device with push on.
#[derive(Debug, Clone)]
pub struct PushDeviceView {
    /// Subscription id (the removal form's URL).
    pub id: i64,
    /// `push-device-{id}`.
    pub dom_id: String,
    /// "Firefox on Android".
    pub label: String,
    /// The push service's host.
    pub service: String,
    /// When it was turned on.
    pub since: Stamp,
}

/// My devices with push on: what `settings/_push_devices.html` shows as `push`.
#[derive(Debug, Clone)]
pub struct PushDevicesView {
    /// `push-devices`.
    pub dom_id: &'static str,
    /// The devices, oldest first.
    pub devices: Vec<PushDeviceView>,
}

impl PushDevicesView {
    /// The list of `devices`.
    pub fn new(devices: &[PushDevice]) -> PushDevicesView {
        PushDevicesView {
            dom_id: dom::containers::PUSH_DEVICES,
            devices: devices
                .iter()
                .map(|d| PushDeviceView {
                    id: d.id,
                    dom_id: dom::push_device(d.id),
                    label: d.label.clone(),
                    service: d.service.clone(),
                    since: Stamp::new(d.created_at),
                })
                .collect(),
        }
    }
}

/// `settings/_push_devices.html`, standalone (the live fragment).
#[derive(Template)]
#[template(path = "settings/_push_devices.html")]
pub struct PushDevicesPartial {
    /// The list.
    pub push: PushDevicesView,
}

/// `offline.html`: what an installed app shows when the server cannot be reached. It is cached
/// by the service worker, so it shows nobody's data.
#[derive(Template)]
#[template(path = "offline.html")]
pub struct OfflinePage {
    /// Layout (anonymous and bare).
    pub layout: Layout,
}
