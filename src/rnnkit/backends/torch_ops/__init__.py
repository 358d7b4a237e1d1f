"""The torch-op backend: the variant sequences in plain torch ops with hand-written backward
passes; it runs on any device (CUDA, or a CPU without a C compiler). :mod:`.lstm` and :mod:`.gru`
are the sequence Functions, :mod:`.common` their shared pieces."""
