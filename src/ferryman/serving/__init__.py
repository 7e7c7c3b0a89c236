"""The data plane: a replica serving one variant over the Open Inference Protocol V2."""
