"""LLM Explainer engine: model loading and every computation the pages show.

This package never imports Streamlit, so it can be unit-tested directly.
"""
