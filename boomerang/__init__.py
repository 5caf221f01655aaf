"""Boomerang: a VoIP callback platform on Kamailio and rtpengine (shared foundation package)."""
