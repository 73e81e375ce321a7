"""The hospital's languages: HL7 v2 (IHE PCD-01) in over MLLP and HTTP, FHIR R4 reads out, CDS Hooks cards."""
