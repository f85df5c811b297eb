"""What a client of the pipeline does: put (stage, request, wait), list and show, restore,
remove and forget, scrub, tail the audit topic. The CLI and the tests use it; it talks to the
topics, reads MongoDB and the stores, and never runs a stage's work itself."""
