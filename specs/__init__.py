"""What every package agrees on: the metric catalogue, the availability rule, the versioned
config-file reader. Pure data and parsing; imports none of llmkpi's packages."""
