"""What runs on a SuperNode: data, the 4-bit base model with named LoRA adapters, training.

Only the ClientApp (and the user's tools that load the model) import this
package; it is the only part of the library that needs torch.
"""
