"""KaniTTS2 engine: an LFM2 language model that writes NanoCodec frames, decoded to 22 kHz audio.

Importing this package imports no torch; `engine.KaniTTS2Engine.load(settings)` does the heavy work
inside the worker process.
"""
