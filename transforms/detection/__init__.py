"""Steps of the image detection job: list, decode and letterbox images, detect,
write detection lines and annotated copies, clean up the inputs."""
