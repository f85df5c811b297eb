"""The dashboard (Streamlit, ``movingdata dashboard``): a read-only process over MongoDB and
the broker, opened with a reader token; a token sees its own tenant (an admin's, every one)."""
