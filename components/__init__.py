"""One pulumi.ComponentResource per platform part; each knows only its typed args."""
