"""Pure figure builders (no Streamlit), one module per kind of figure, unit-tested in ``tests/test_figures.py``:
``bars``, ``lines``, ``heatmaps``, ``scatter``, ``maps``, ``images``, ``html`` (chips and highlighted text), ``tables``
(DataFrames), ``bertviz`` (offline attention views) and ``base`` (palette and token labels)."""
