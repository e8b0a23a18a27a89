"""Story models, written exactly as a user would write ordinary Lightning code.

Nothing here imports normreg: these modules prove that normreg runs code it does not control.
"""
