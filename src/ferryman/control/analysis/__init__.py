"""Pure statistics: drift, model quality, significance."""
