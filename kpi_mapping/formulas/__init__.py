"""Pure formula functions over DataFrames, one module per kind of input."""
