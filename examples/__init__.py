"""Small runnable programs that use telegram-emitter as a library; each has a `main()`."""
