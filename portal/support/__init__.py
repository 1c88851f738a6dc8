"""Support: contact details and a contact form that stores and mails messages."""
