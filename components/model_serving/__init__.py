"""The model-serving part: per model its args (`args`), each variant's server pod (`pod`), the way clients reach it
(`routes`), the optional InferencePool with its endpoint picker (`inference_pool`), and the components that declare
them, with the model namespaces they run in (`component`)."""
