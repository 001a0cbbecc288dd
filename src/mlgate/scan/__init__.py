"""Static scan stage: format sniffing, one handler per format, the pickle VM."""
