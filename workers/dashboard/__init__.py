"""The dashboard (Streamlit, ``movingdata dashboard``): a read-only process over MongoDB and
the broker, opened with a reader token; a token sees its own tenant (an admin's, every one)."""

from pathlib import Path

# The page is a Streamlit script, run by `streamlit run`: importing it would run it.
PAGE = Path(__file__).with_name("app.py")
