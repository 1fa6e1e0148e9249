"""The workbench library: data ingestion, recommenders, search, fusion, training and serving.

Pure Python: nothing here imports Streamlit, so every part runs from a notebook or
from `python -m recsys`.
"""
