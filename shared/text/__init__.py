"""Text to chunks: ``normalize`` (with an offset map to the original) -> ``segment`` (pysbd) ->
``chunking`` (``chunk_text``, ``split_streams``); ``rate.SpeechRate`` learns chars per second.
Language rules register in ``languages`` (English: ``lang_en``, ``numbers_en``; Spanish: ``lang_es``,
``numbers_es``)."""
