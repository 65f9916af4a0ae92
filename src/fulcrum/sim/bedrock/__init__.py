"""``fulcrum sim bedrock``: an Amazon Bedrock Runtime emulator that boto3 accepts."""
