"""The Open Inference Protocol (KServe V2): its types and the codecs at the edge."""
