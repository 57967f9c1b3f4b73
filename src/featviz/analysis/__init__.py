"""The analyses the Microscope and explain share: dataset examples, attribution (captum),
circuits between layers, trust figures and neuron groups."""
