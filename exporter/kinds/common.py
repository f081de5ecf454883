"""The families every kind shares: one family per concept, with a `kind` label, so that a
fleet question ("every device that is down") is one selector whatever the kind."""

from __future__ import annotations

from exporter.kinds.family import Family, Source

UP = Family(
    "podero_device_up",
    "1 if the last poll of this device succeeded, else 0 (kinds without data to poll, "
    "wallboxes, have none).",
    Source.POLL,
    shared=True,
    group="health",
)
DATA_TIMESTAMP = Family(
    "podero_device_data_timestamp_seconds",
    "Time of the device's exported data point (API field time), Unix seconds.",
    Source.POLL,
    field="time",
    shared=True,
    group="health",
)
LAST_SUCCESS = Family(
    "podero_device_last_success_timestamp_seconds",
    "When the last successful poll of this device finished, Unix seconds.",
    Source.POLL,
    shared=True,
    group="schedule",
    default=False,
)
NEXT_POLL = Family(
    "podero_device_next_poll_timestamp_seconds",
    "When this device is next polled, Unix seconds.",
    Source.POLL,
    shared=True,
    group="schedule",
    default=False,
)
INFO = Family(
    "podero_device_info",
    "Always 1; labels describe the device: kind, ids, configured labels, and where known "
    "manufacturer, model, price_zone (inverters) and lifecycle_state. Join on device_id.",
    Source.TARGET,
    shared=True,
    group="health",
)
AUTHENTICATED = Family(
    "podero_device_authenticated",
    "1 if the device's manufacturer connection is authenticated, 0 if it lapsed and the "
    "customer must reconnect: the API field is_authenticated where given, else 0 while a "
    "reauthenticate action is open, else 1 if lifecycle_state is authenticated.",
    Source.TARGET,
    field="is_authenticated",
    shared=True,
    group="health",
)
ACTION_NEEDED = Family(
    "podero_device_action_needed",
    "1 if the customer must act on this device: one series per open action (label action, "
    "its code, e.g. reauthenticate) where the API lists actions, else one series from the API "
    "field action_needed; a series without action is 0 when there is none.",
    Source.TARGET,
    field="actions",
    labels=("action",),
    shared=True,
    group="health",
)
SMART_OPTIMIZATION = Family(
    "podero_device_smart_optimization_active",
    "1 if Podero's smart optimisation is active for the device, else 0 "
    "(API field is_smart_optimization_active).",
    Source.TARGET,
    field="is_smart_optimization_active",
    shared=True,
    group="optimization",
    default=False,
)
OPTIMIZATION_SCORE = Family(
    "podero_device_optimization_score",
    "The device's optimisation score as the API field optimization_score gives it.",
    Source.TARGET,
    field="optimization_score",
    shared=True,
    group="optimization",
    default=False,
)
# Polled kinds: these change with every poll.
POLLED = (DATA_TIMESTAMP, UP, LAST_SUCCESS, NEXT_POLL)
DESCRIBED = (INFO, AUTHENTICATED, ACTION_NEEDED, SMART_OPTIMIZATION, OPTIMIZATION_SCORE)
FAMILIES = (*POLLED, *DESCRIBED)
# The labels of the info series besides identity, kind and the kinds' inventory labels.
INFO_LABELS = ("org_id",)
