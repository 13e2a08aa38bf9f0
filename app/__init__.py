"""The Streamlit executive view (built in a later issue)."""
