"""The dashboard's entry point: page configuration, navigation and the shared sidebar.

Run it from the project root with ``python -m dashboard`` (or ``streamlit run dashboard/app.py``).
Each page is a short script in ``dashboard/views/``; everything they show comes from :mod:`mnist_model`.
"""

from pathlib import Path

import streamlit as st

from dashboard import log_to_stderr, ui

PAGES = Path(__file__).parent / "views"

log_to_stderr()

st.set_page_config(page_title="MNIST dashboard", page_icon=":material/draw:", layout="wide")

page = st.navigation(
    {
        "Train and inspect": [
            st.Page(PAGES / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
            st.Page(PAGES / "training.py", title="Training", icon=":material/model_training:"),
            st.Page(PAGES / "evaluation.py", title="Evaluation", icon=":material/grid_on:"),
            st.Page(PAGES / "map.py", title="Map", icon=":material/scatter_plot:"),
            st.Page(PAGES / "compare.py", title="Compare", icon=":material/compare:"),
            st.Page(PAGES / "model.py", title="Model", icon=":material/account_tree:"),
        ],
        "Try it": [
            st.Page(PAGES / "predict.py", title="Predict", icon=":material/draw:"),
            st.Page(PAGES / "mydigits.py", title="My digits", icon=":material/bookmarks:"),
        ],
    }
)
ui.sidebar()
page.run()
