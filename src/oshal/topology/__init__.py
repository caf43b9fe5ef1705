"""The platform drawn from its live state: one model (:mod:`.model`), the views of it (:mod:`.views`) and their
renderings (:mod:`.render`). Pure: what builds the model from the running system lives in the control plane."""
