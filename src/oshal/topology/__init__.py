"""The platform drawn from its live state: one model (:mod:`.model`), built from the running system by one module
(:mod:`.live`), the views of it (:mod:`.views`) and their renderings (:mod:`.render`). Model, views and renderings
are pure."""
