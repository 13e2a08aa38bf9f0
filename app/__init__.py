"""The Streamlit executive view."""
