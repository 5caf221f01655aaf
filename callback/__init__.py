"""The call controller: places callbacks and runs their call flows over Kamailio and rtpengine."""
