"""The appliance's certificate authority and timestamp authority; every key lives in the HSM."""
