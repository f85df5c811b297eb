"""What the fleet runs on a timer, on one worker of a group: the scheduled scrub, the
retention."""
