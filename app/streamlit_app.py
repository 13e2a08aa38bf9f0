"""`streamlit run app/streamlit_app.py -- CONFIG`: what `llmkpi app` starts (CONFIG is the
page's JSON config, or a file holding it)."""

import sys

from app.config import PageConfig
from app.page import main

main(PageConfig.from_argv(sys.argv[1:]))
