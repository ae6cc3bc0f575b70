import os

os.environ.setdefault("OPBAYES_PROGRESS", "0")
