"""Pure core: models, classification, parsing and policies. No I/O, no faust, no redis."""
