"""The fault campaign (`make faults`): services killed and restarted mid-work, and what must hold after."""
