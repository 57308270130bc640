"""The model-storage part: its args (`args`); what model servers see of it, the weights claim and each model's folder
(`volume`); the servers behind JuiceFS (`backends`); the loader Jobs and warmup that put weights in the volume
(`loader`), and the scripts those Jobs run (`scripts/`); and the component that declares it all (`component`)."""
