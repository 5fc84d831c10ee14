"""One module per resource; each defines `router`. main.py includes every module found here."""
