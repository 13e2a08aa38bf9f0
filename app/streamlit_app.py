"""`streamlit run app/streamlit_app.py -- CONFIG.json`: what `llmkpi app` starts."""

import sys

from app.config import PageConfig
from app.page import main

main(PageConfig.from_argv(sys.argv[1:]))
