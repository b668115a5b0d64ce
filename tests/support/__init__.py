"""Test infrastructure shared by tests and the benchmark: a live Streamlit WebSocket client."""
