"""What the fleet runs on a timer, on one worker of a group: the checkpointer, the
scheduled scrub, the reconcile and the retention (the sink's leader), the staging sweep (the
encrypt workers); ``runner`` runs those over MongoDB's state."""
