"""Every name that 0.1.0 renamed (issue 19's one vocabulary), written down here on purpose
rather than derived from the code: the CHANGELOG and the README's "Upgrading" table must list
each, and no other part of the README may still use an old one."""

from __future__ import annotations

# (old, new) for series, labels, alerts and the inverter dashboard's variable.
RENAMED_SERIES = (
    ("podero_inverter_up", "podero_device_up"),
    ("podero_inverter_info", "podero_device_info"),
    ("podero_inverter_data_timestamp_seconds", "podero_device_data_timestamp_seconds"),
    (
        "podero_inverter_last_success_timestamp_seconds",
        "podero_device_last_success_timestamp_seconds",
    ),
    (
        "podero_inverter_next_poll_timestamp_seconds",
        "podero_device_next_poll_timestamp_seconds",
    ),
    ("podero_inverter_authenticated", "podero_device_authenticated"),
    ("podero_inverter_action_needed", "podero_device_action_needed"),
    ("podero_discovery_inverters", "podero_discovery_devices"),
)
RENAMED_LABELS = (("inverter_id", "device_id"),)
RENAMED_ALERTS = (
    ("PoderoInverterDataStale", "PoderoDeviceDataStale"),
    ("PoderoInverterNoData", "PoderoDeviceNoData"),
    ("PoderoInverterPollFailing", "PoderoDevicePollFailing"),
    ("PoderoInverterNotAuthenticated", "PoderoDeviceNotAuthenticated"),
    ("PoderoInverterActionNeeded", "PoderoDeviceActionNeeded"),
)
RENAMES = RENAMED_SERIES + RENAMED_LABELS + RENAMED_ALERTS
OLD_NAMES = tuple(old for old, _ in RENAMES)
