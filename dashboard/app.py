"""The geokd dashboard: ``streamlit run dashboard/app.py`` (or ``geokd dashboard``).

A client of the REST API only (``GEOKD_API_URL``); the API key is entered once per browser
session in the sidebar. Each page is a thin script in ``views/``; shaping, figures and
statistics are pure modules next to this file.
"""

from __future__ import annotations

import streamlit as st

from dashboard import session

st.set_page_config(page_title="geokd", page_icon=":material/blur_on:", layout="wide")

PAGES = [
    st.Page("views/jobs.py", title="Jobs", icon=":material/view_list:", default=True),
    st.Page("views/submit.py", title="Submit", icon=":material/add_circle:"),
    st.Page("views/job.py", title="Job", icon=":material/monitoring:"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare_arrows:"),
]

page = st.navigation(PAGES)
with st.sidebar:
    st.markdown("### geokd")
    st.caption("Geometry-aware knowledge distillation")
session.sidebar()
page.run()
