"""Stream: thin faust glue (decode -> core -> state -> send). No business rules here."""
