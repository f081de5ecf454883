"""The core state, pure where it can be: readings, schedules, energy, targets and the store."""
