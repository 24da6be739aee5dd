"""Dataset tools: `python data_tools/crop_faces.py` builds an anime-face dataset."""
