"""Corporate LDAP / Active Directory: authentication, people and group-to-role mapping."""
