"""Pure figures and verdicts: functions of recorded data, no I/O."""
