include $(sort $(wildcard $(BR2_EXTERNAL_PGBOX_PATH)/package/*/*.mk))
